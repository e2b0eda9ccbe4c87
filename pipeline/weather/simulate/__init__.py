"""The embedded Held–Suarez atmosphere (dinosaur-torch), its cache, and the perfect-model ensemble."""
