python provision.py
