"""The integration tests' throwaway PostgreSQL cluster (pg_cluster.py) itself: what the
two-gateway tests rely on."""
import os
import unittest

from pg_cluster import PgCluster


class PgClusterLifecycle(unittest.TestCase):
    def test_a_cluster_serves_its_databases_and_is_removed_when_stopped(self):
        pg = PgCluster().start()
        try:
            url = pg.create_database("Two-Gateways")
            self.assertEqual(url, "postgresql://postgres@127.0.0.1:%d/two_gateways" % pg.port)
            self.assertEqual(pg.psql("SELECT current_database()", "two_gateways"), "two_gateways")
            self.assertEqual(pg.psql("SHOW fsync"), "on")
            self.assertEqual(pg.psql("SHOW max_connections"), "200")
            self.assertEqual(pg.psql("SHOW listen_addresses"), "127.0.0.1")
            pg.psql("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)", "two_gateways")
            pg.restart()
            self.assertEqual(pg.psql("SELECT v FROM kept", "two_gateways"), "7")
            directory = pg.dir
        finally:
            pg.stop()
        self.assertFalse(os.path.exists(directory))


if __name__ == "__main__":
    unittest.main()
