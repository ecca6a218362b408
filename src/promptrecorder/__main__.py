import sys

from promptrecorder.cli.main import main

sys.exit(main())
