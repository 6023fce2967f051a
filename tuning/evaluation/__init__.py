"""Evaluating one configuration: data sets; ``keras`` (the factory, the book's model, the
training protocol and its trainers); ``tabular`` (building a table of learning curves, reading
it, answering trials from it). Importing this package imports no Keras."""
