"""The catalog: its schema, building it from search results, checking, materialising, reporting."""
