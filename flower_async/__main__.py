"""``python -m flower_async local ...``: the app on this machine (``flower_async.local``)."""
import sys

from flower_async.local import main

if __name__ == "__main__":
    sys.exit(main())
