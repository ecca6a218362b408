"""``instrument_openai()``: record the openai calls your own code makes inside a recorder.

One generic mechanism and a thin openai table. A ``_Patch`` replaces one attribute (the
``create`` method of an openai resource class, or of one client's resource object) with a
wrapper that hands the call to ``openai_calls.record_create``, the path the bots use too;
the table below says which attributes, in openai 1.x and 3.x alike. An instrumented
client's ``copy``/``with_options`` are wrapped too (``_Deriver``), so that the clients they
derive are instrumented under the same handle.

Idempotence and undo: patches are shared and counted. Instrumenting a target that is
already instrumented reuses its patch and counts one more user; each handle lets go of
its own use once (a second ``uninstrument()`` is a no-op), and the original is put back
when the last user lets go. A wrapper that is no longer installed, but that something
still holds (a ``with_raw_response`` accessor built while instrumented, or another
library that wrapped ours), passes every call straight through.

There is no ``tracer_provider`` argument: a call is recorded only inside a recorder, and
its CLIENT span goes to that recorder's provider, as the recorder's own span does.

Threading contract: instrumenting and undoing may happen from any thread; they are
serialised by a module lock. The wrappers themselves take no lock.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from promptrecorder._diagnostics import warn_once
from promptrecorder.llm import openai_internals
from promptrecorder.llm.openai_adapter import CHAT, RESPONSES
from promptrecorder.llm.openai_calls import arecord_create, record_create
from promptrecorder.recording.activation import active_chain
from promptrecorder.recording.calls import Endpoint, describe_endpoint

logger = logging.getLogger(__name__)

# The resource classes whose ``create`` every client reaches, as (module, class, api).
# openai 1.x had chat completions in a module, later in a package: both import as below.
# ``responses`` appeared during 1.x; a target whose module or class is missing is skipped.
_CLASS_TARGETS: tuple[tuple[str, str, str], ...] = (
    ("openai.resources.chat.completions", "Completions", CHAT),
    ("openai.resources.chat.completions", "AsyncCompletions", CHAT),
    ("openai.resources.responses", "Responses", RESPONSES),
    ("openai.resources.responses", "AsyncResponses", RESPONSES),
)
# The same resources reached from one client, as (attribute path, api).
_CLIENT_TARGETS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("chat", "completions"), CHAT),
    (("responses",), RESPONSES),
)
_METHOD = "create"
# What derives a new client from one (``with_options`` is openai's alias of ``copy``): the
# clients these return are instrumented under the handle that instrumented the original.
_DERIVING_METHODS = ("copy", "with_options")
# Marks our wrappers, so that instrumenting twice finds the patch already in place.
_PATCH_ATTRIBUTE = "__promptrecorder_patch__"

_lock = threading.Lock()


class Instrumentation:
    """What one ``instrument_openai`` call did; undo it with ``uninstrument()``.

    Usable as a context manager: ``with instrument_openai(client): ...`` undoes it on exit.

    Threading contract: ``uninstrument`` may be called from any thread, any number of times.
    """

    def __init__(self, patches: Sequence[_Patch]) -> None:
        self._patches = list(patches)
        self._derivers: list[_Deriver] = []  # on the clients this handle follows
        self._released = False

    @property
    def targets(self) -> tuple[str, ...]:
        """What this handle instruments, e.g. ``openai.resources.chat.completions.Completions.create``."""
        return tuple(patch.description for patch in self._patches)

    @property
    def active(self) -> bool:
        """True until this handle is undone."""
        return not self._released

    def uninstrument(self) -> None:
        """Let go of this handle's instrumentation; the originals return with the last user."""
        with _lock:
            if self._released:
                return
            self._released = True
            for patch in self._patches:
                patch.release()
            for deriver in self._derivers:
                deriver.remove()

    def close(self) -> None:
        """The same as ``uninstrument()``."""
        self.uninstrument()

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        state = "active" if self.active else "undone"
        return f"<Instrumentation {state}: {', '.join(self.targets) or 'nothing'}>"

    def _follow(self, client: object) -> None:
        """Instrument ``client``, and every client derived from it, under this handle."""
        targets = _client_targets(client)
        with _lock:
            if self._released:  # a client derived after the undo stays plain
                return
            # A service may derive a client per request: forget those already collected.
            self._patches = [patch for patch in self._patches if patch.alive]
            self._derivers = [deriver for deriver in self._derivers if deriver.alive]
            self._patches += [_Patch.acquire(owner, api, description) for owner, api, description in targets]
            for name in _DERIVING_METHODS:
                if callable(getattr(client, name, None)):
                    self._derivers.append(_Deriver(self, client, name))


def instrument_openai(client: object = None) -> Instrumentation:
    """Record every openai ``create`` call made inside an active ``PromptRecorder``.

    ``chat.completions.create`` and ``responses.create``, sync or async, whole or streamed,
    each get a CLIENT span ``chat {model}`` under the recorder's span and a record in the
    recorder. Outside any recorder the calls pass through untouched. What the caller gets
    back is what openai returned, except that a stream comes back in a proxy that forwards
    everything to the openai stream (so ``isinstance(reply, openai.Stream)`` is False).

    Example:
        >>> client = openai.OpenAI()  # doctest: +SKIP
        >>> with instrument_openai(client), PromptRecorder("triage") as recorder:  # doctest: +SKIP
        ...     client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        >>> recorder.records  # doctest: +SKIP

    Args:
        client: an ``openai.OpenAI`` or ``openai.AsyncOpenAI`` (Azure ones too) to
            instrument that client, and the clients its ``with_options(...)`` and
            ``copy()`` derive, or None to instrument every client, made before or after. A
            ``with_raw_response`` accessor is bound when first used: one first used before
            instrumenting keeps calling the plain method.

    Returns:
        An ``Instrumentation`` handle; ``uninstrument()`` it or use it in a ``with`` block.
        Instrumenting a target twice does not wrap it twice, and a call is never recorded
        twice, whichever scopes (a bot, one client, every client) cover it; the target is
        restored when every handle on it has been undone.

    Raises:
        TypeError: ``client`` is neither None nor an openai client.
    """
    if client is not None:
        _check_client(client)
        handle = Instrumentation(())
        handle._follow(client)
        return handle
    targets = _class_targets()
    with _lock:
        patches = [_Patch.acquire(owner, api, description) for owner, api, description in targets]
    return Instrumentation(patches)


def _check_client(client: object) -> None:
    import openai

    if not isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        raise TypeError(
            "`client` must be an openai.OpenAI or openai.AsyncOpenAI client, or None to instrument "
            f"every client, got {type(client).__name__}: {client!r}"
        )


def _class_targets() -> list[tuple[object, str, str]]:
    targets: list[tuple[object, str, str]] = []
    for module_name, class_name, api in _CLASS_TARGETS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # an openai too old to have this API
            continue
        cls = getattr(module, class_name, None)
        if isinstance(cls, type) and callable(getattr(cls, _METHOD, None)):
            targets.append((cls, api, f"{module_name}.{class_name}.{_METHOD}"))
    return targets


def _client_targets(client: object) -> list[tuple[object, str, str]]:
    targets: list[tuple[object, str, str]] = []
    for path, api in _CLIENT_TARGETS:
        resource: Any = client
        for name in path:
            resource = getattr(resource, name, None)
        if resource is not None and callable(getattr(resource, _METHOD, None)):
            described = ".".join((type(client).__name__, *path, _METHOD))
            targets.append((resource, api, f"{described} of client {id(client):#x}"))
    return targets


def _is_async(function: Callable[..., Any]) -> bool:
    # openai's async create methods are ``async def`` beneath a plain decorator
    # (``required_args``), so look beneath the wrappers.
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(inspect.unwrap(function))


def _endpoint(resource: object) -> Endpoint:
    """Who serves ``resource``'s calls, read from its client at call time."""
    client = openai_internals.resource_client(resource)
    return describe_endpoint(openai_internals.client_base_url(client), type(client).__name__)


class _Deriver:
    """One client's ``copy`` or ``with_options``, wrapped so that what it returns is followed.

    The wrapper is an attribute of the client itself (openai defines these methods on the
    class); it holds the client weakly, so instrumenting never keeps a client alive.
    """

    def __init__(self, handle: Instrumentation, client: object, name: str) -> None:
        self._client = weakref.ref(client)
        self.name = name
        own = vars(client)
        self.had_own = name in own
        self.previous: Any = own.get(name)
        client_ref = self._client

        def derive(*args: Any, **kwargs: Any) -> Any:
            original = client_ref()
            if original is None:  # unreachable while the client calls us; be safe anyway
                raise ReferenceError("the instrumented openai client no longer exists")
            method = self.previous if self.had_own else getattr(type(original), name).__get__(original)
            derived = method(*args, **kwargs)
            try:
                handle._follow(derived)
            except Exception as error:  # instrumenting must never break the caller's copy
                warn_once(
                    logger,
                    "follow-derived",
                    "promptrecorder could not instrument a derived client: %r",
                    error,
                )
            return derived

        for attribute in ("__name__", "__qualname__", "__doc__"):
            setattr(derive, attribute, getattr(getattr(client, name), attribute, None) or name)
        setattr(derive, _PATCH_ATTRIBUTE, self)
        self.wrapper = derive
        self.removed = False
        setattr(client, name, derive)

    @property
    def alive(self) -> bool:
        return self._client() is not None

    def remove(self) -> None:
        """Put back what the client had, where ours still stands (someone may have wrapped it)."""
        self.removed = True
        client = self._client()
        if client is None or vars(client).get(self.name) is not self.wrapper:
            return  # another wrapper stands on ours: its removal will skip ours
        had_own, previous = self.had_own, self.previous
        beneath = getattr(previous, _PATCH_ATTRIBUTE, None)
        while had_own and isinstance(beneath, _Deriver) and beneath.removed:
            # Another handle's wrapper under ours, undone first: put back what it replaced.
            had_own, previous = beneath.had_own, beneath.previous
            beneath = getattr(previous, _PATCH_ATTRIBUTE, None)
        if had_own:
            setattr(client, self.name, previous)
        else:
            delattr(client, self.name)


class _Patch:
    """One attribute replaced by a recording wrapper, shared by the handles that use it.

    ``owner`` is a resource class (every client) or a resource object (one client). The
    patch holds its owner weakly, so instrumenting one client never keeps it alive.
    """

    def __init__(self, owner: object, api: str, description: str) -> None:
        self._owner = weakref.ref(owner)
        self.api = api
        self.description = description
        own = vars(owner)
        self.had_own = _METHOD in own
        self.previous: Any = own[_METHOD] if self.had_own else None
        self.users = 0
        self.installed = False
        if isinstance(owner, type):
            # The class's own method, or the one it inherits (restored by deleting ours).
            function: Callable[..., Any] = getattr(owner, _METHOD)
            self.is_async = _is_async(function)
            self.wrapper = self._class_wrapper(function)
        else:
            original = self._original(owner)
            self.is_async = _is_async(original)
            self.wrapper = self._instance_wrapper()
            # Not functools.wraps: its __wrapped__ would hold the resource in a cycle.
            for name in ("__name__", "__qualname__", "__doc__"):
                setattr(self.wrapper, name, getattr(original, name, None) or _METHOD)
        setattr(self.wrapper, _PATCH_ATTRIBUTE, self)

    @classmethod
    def acquire(cls, owner: object, api: str, description: str) -> _Patch:
        """The patch in place on ``owner``, or a new one installed; either way one more user."""
        current = vars(owner).get(_METHOD)
        patch = getattr(current, _PATCH_ATTRIBUTE, None)
        if not isinstance(patch, _Patch) or not patch.installed:
            patch = cls(owner, api, description)
            setattr(owner, _METHOD, patch.wrapper)
            patch.installed = True
        patch.users += 1
        return patch

    @property
    def alive(self) -> bool:
        """False once the resource or class patched is gone (a client collected)."""
        return self._owner() is not None

    def release(self) -> None:
        """One user fewer; with none left, put the original back where ours still stands."""
        self.users -= 1
        if self.users > 0 or not self.installed:
            return
        self.installed = False
        owner = self._owner()
        # If something wrapped ours since, leave its wrapper in place: ours now passes through.
        if owner is None or vars(owner).get(_METHOD) is not self.wrapper:
            return
        if self.had_own:
            setattr(owner, _METHOD, self.previous)
        else:
            delattr(owner, _METHOD)

    def _original(self, resource: object) -> Callable[..., Any]:
        """The method a resource object had before us: its own attribute, else its class's."""
        if self.had_own:
            return self.previous  # type: ignore[no-any-return]
        method: Callable[..., Any] = getattr(type(resource), _METHOD).__get__(resource, type(resource))
        return method

    def _class_wrapper(self, function: Callable[..., Any]) -> Callable[..., Any]:
        patch = self
        api = self.api
        if self.is_async:

            @functools.wraps(function)
            async def acreate(resource: Any, *args: Any, **kwargs: Any) -> Any:
                if not patch.installed or not active_chain():
                    return await function(resource, *args, **kwargs)
                bound = functools.partial(function, resource)
                return await arecord_create(bound, args, kwargs, api=api, endpoint=_endpoint(resource))

            return acreate

        @functools.wraps(function)
        def create(resource: Any, *args: Any, **kwargs: Any) -> Any:
            if not patch.installed or not active_chain():
                return function(resource, *args, **kwargs)
            bound = functools.partial(function, resource)
            return record_create(bound, args, kwargs, api=api, endpoint=_endpoint(resource))

        return create

    def _instance_wrapper(self) -> Callable[..., Any]:
        # The original is looked up at each call rather than kept, so that a class patched
        # or restored later (every-client instrumentation) is seen by this client too.
        patch = self
        api = self.api

        def resolve() -> tuple[object, Callable[..., Any]]:
            resource = patch._owner()
            if resource is None:  # unreachable while the resource calls us; be safe anyway
                raise ReferenceError("the instrumented openai resource no longer exists")
            return resource, patch._original(resource)

        if self.is_async:

            async def acreate(*args: Any, **kwargs: Any) -> Any:
                resource, original = resolve()
                if not patch.installed or not active_chain():
                    return await original(*args, **kwargs)
                return await arecord_create(original, args, kwargs, api=api, endpoint=_endpoint(resource))

            return acreate

        def create(*args: Any, **kwargs: Any) -> Any:
            resource, original = resolve()
            if not patch.installed or not active_chain():
                return original(*args, **kwargs)
            return record_create(original, args, kwargs, api=api, endpoint=_endpoint(resource))

        return create
