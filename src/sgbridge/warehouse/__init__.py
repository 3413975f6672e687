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
# A load job that fails is retried by sgbridge: the next load finishes the pending load, or gives it
# up and loads the rows afresh (warehouse/loader.py), and the window itself is retried with backoff.
# dlt's own retries within one load (5 by default, a second or more apart) only made each refused
# load take several seconds, and the search for an event the warehouse refuses take minutes.
os.environ.setdefault("LOAD__RAISE_ON_MAX_RETRIES", "1")
