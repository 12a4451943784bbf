python provision.py && exec python gateway.py
