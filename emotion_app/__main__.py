"""`python -m emotion_app <command>`: see emotion_app/cli/."""

import sys

from emotion_app.cli import main

sys.exit(main())
