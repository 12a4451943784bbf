# the gateway feeds the platform; clean.py exports, cleans and writes the files every second
python gateway.py & exec python clean.py
