"""RAM (Recognize Anything, arXiv 2306.03514), the predecessor of RAM++: RAM++'s tagging graph with one label
embedding per tag and no description re-weighting. Its configuration and model subclass RAM++'s."""
