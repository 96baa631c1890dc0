"""The cluster client: HTTP to Milvus / Zilliz Cloud REST, with no Django imports."""
