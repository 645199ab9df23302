from .method import IDM

__all__ = ["IDM"]
