"""Platform stand-ins for the adapter tests: a local Lambda Runtime API for the real
awslambdaric, a functions-framework server launcher, and Azure worker indexing."""
