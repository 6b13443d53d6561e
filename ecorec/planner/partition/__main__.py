import sys

from ecorec.planner.partition.run import main

sys.exit(main())
