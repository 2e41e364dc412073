"""`python -m chatvlmllm`."""

import sys

from chatvlmllm.cli import main

sys.exit(main())
