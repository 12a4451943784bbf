# the gateway feeds the platform; the OEE APP reads it back and writes oee-1
python gateway.py & exec python oee_app.py
