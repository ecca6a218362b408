"""The openai integration: ``SimpleBot``/``ChatBot`` and ``instrument_openai``, on top of recording.

Imports ``promptrecorder.recording`` (and the shared top-level modules) only.
"""
