"""`python -m kms.sandbox`: the same as `tatum-kms sandbox`."""

import sys

from kms.sandbox.server import main

sys.exit(main())
