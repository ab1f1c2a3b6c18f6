"""`python -m kms.sandbox`: the same as `tatum-kms sandbox`."""

import sys

from kms.cli import main

sys.exit(main(["sandbox", *sys.argv[1:]]))
