import sys

from torchpkg.cli import main

sys.exit(main())
