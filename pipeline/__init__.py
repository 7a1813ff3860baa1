"""The meme publishing pipeline: library -> imaging -> storage -> gallery -> newsletter."""

__version__ = "0.1.0"
