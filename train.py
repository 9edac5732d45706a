"""Fine-tune a LoRA emotion classifier: `python train.py CONFIG.json [options]`.

The same command as `python -m emotion_app train` (emotion_app/cli/train.py: recipes, resuming,
publishing); `python train.py --help` lists every option.
"""

import sys

from emotion_app.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
