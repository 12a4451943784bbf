python proxy.py
