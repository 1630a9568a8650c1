import sys

from benchmarks.fault_corpus.run import main

sys.exit(main())
