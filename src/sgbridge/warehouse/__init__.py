"""The warehouse: SendGrid events and objects loaded with dlt.

dlt reads its settings from the environment; these are sgbridge's defaults, set before any
pipeline exists (a user's own variables win).
"""

import os

# dlt adds its load id to Arrow tables only when asked. Not its row id (``_dlt_id``): append-only
# tables have no use for it (``_sgbridge_seq`` identifies a row), and adding it made dlt rewrite
# every file in its normalize step, a third of the load time.
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # no network at run time
# dlt's parquet files only carry rows from the extract step to the database and are deleted after
# the load: compressing them (snappy by default) cost about a tenth of an event load.
os.environ.setdefault("DATA_WRITER__COMPRESSION", "none")
