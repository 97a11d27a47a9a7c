"""TFDS dataset builders over local raw files (``config.data.raw_dir``), prepared once to
array_record in ``config.data.data_dir`` and read with ``tfds.data_source`` and grain."""
