import sys

from metalcubed.cli import main

sys.exit(main.main())
