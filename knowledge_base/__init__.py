"""Code indexes (lexical, symbol, semantic) and knowledge documents. A leaf: imports nothing of ours."""
