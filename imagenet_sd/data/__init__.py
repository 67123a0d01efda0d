"""Stage 3, data: chunk tars and real folders packed into WebDataset shards (shards, realdata), the one image
decoder (images), the training loader (loader), and the transfer datasets indexed for the features (transfer_sets)."""
