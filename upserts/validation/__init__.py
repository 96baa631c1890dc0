"""A collection schema's rules checked on each row before it is sent.

Milvus refuses a whole request for one bad row and names only the first problem, so every row
is checked here first: a bad row fails alone, with a problem per field, and the good rows of
its batch still land. ``values`` checks one value against its field's type, ``entities`` one
row against the collection, ``text_cells`` types CSV text by the schema first, and
``collections`` finds what is wrong with the target collection itself.
"""
