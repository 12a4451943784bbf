python detector.py
