"""`curate export`: curated Parquet or WebDataset shards with their index and side files, in formats
other tools read (stage, index, webdataset, hf_features)."""
