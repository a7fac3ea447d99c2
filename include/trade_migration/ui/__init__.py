"""The Trade migration page: the state gathered, and rendered as HTML."""
