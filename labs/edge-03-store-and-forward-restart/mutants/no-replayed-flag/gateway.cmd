python gateway.py
