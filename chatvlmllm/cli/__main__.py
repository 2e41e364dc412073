"""`python -m chatvlmllm.cli`."""

import sys

from chatvlmllm.cli import main

sys.exit(main())
