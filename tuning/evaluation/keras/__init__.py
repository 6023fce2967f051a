"""Real training: the model factory, the book's MLP, the training protocol, and the trainers
(Keras `fit`, the compiled and vmapped programs). Importing this package imports no Keras:
`environment` chooses its backend first."""
