"""Reading a dataset: DuckDB views confined to it (sql, duck, readonly_fs, output), `curate stats`,
`curate why`, the HTML report and the coverage card."""
