"""gotd: data selection for pre-fine-tuning by optimal-transport gradients (GOT-D)."""
__version__ = "0.1.0"
