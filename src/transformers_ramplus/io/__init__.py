"""Files: atomic writes and output locks, DICOM reading, the inputs of a tagging run, its result records and what
lets it resume (fingerprints of inputs, models and tag sets; recorded options)."""
