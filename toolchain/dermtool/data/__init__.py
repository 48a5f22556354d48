"""Data: folder layouts, splits, image decoding, the one preprocessing definition and the tf.data pipeline."""
