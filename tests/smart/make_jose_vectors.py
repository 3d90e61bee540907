"""Writes tests/data/jose/vectors.json: keys and JWSs made by an independent implementation
(panva/jose, through jose_tool.mjs), which the JOSE layer's unit tests verify or refuse.
Run again only to replace the vectors: `/usr/bin/python3 tests/smart/make_jose_vectors.py`."""
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "jose", "vectors.json")


def tool(request):
    out = subprocess.run(["node", os.path.join(HERE, "jose_tool.mjs")], input=json.dumps(request),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


claims = {"iss": "ehr", "sub": "ehr", "aud": "https://gw.example.org/auth/token", "exp": 1900000000,
          "jti": "vector-1"}
vectors = {"claims": claims}
for alg, kid in (("ES384", "ec384"), ("RS384", "rsa"), ("ES256", "ec256")):
    keys = tool({"op": "keygen", "alg": alg, "kid": kid})
    jwt = tool({"op": "sign", "jwk": keys["private"], "header": {"alg": alg, "kid": kid, "typ": "JWT"},
                "claims": claims})["jwt"]
    vectors[alg] = {"public": keys["public"], "jwt": jwt}
# The classic key confusion: HS256 keyed with the RSA public key's text.
vectors["HS256_with_public_key"] = tool({"op": "hs256", "secret": json.dumps(vectors["RS384"]["public"]),
                                         "header": {"kid": "rsa", "typ": "JWT"}, "claims": claims})["jwt"]
vectors["none"] = tool({"op": "none", "claims": claims})["jwt"]
with open(OUT, "w") as f:
    json.dump(vectors, f, indent=2)
    f.write("\n")
