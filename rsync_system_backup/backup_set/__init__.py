"""The backup set on the destination: operations on its directories, its lock, its marker and its free space."""
