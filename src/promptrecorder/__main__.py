import sys

from promptrecorder.cli import main

sys.exit(main())
