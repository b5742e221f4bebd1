"""`python -m tests.comparators.corpus`: print precision and recall on the labelled corpus."""

from tests.comparators.corpus import main

main()
