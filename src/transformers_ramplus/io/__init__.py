"""Files: atomic writes, DICOM reading."""
