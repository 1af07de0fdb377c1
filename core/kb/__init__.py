"""The tenant's knowledge base: parsing uploads, chunking, storing documents and chunks, indexing and searching them."""
