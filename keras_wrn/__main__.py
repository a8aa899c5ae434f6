import sys

from keras_wrn.cli import main

sys.exit(main())
