"""The .rspec language: parse -> AST -> check/desugar -> core IR."""
