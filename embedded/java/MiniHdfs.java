import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.util.logging.Level;
import java.util.logging.Logger;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

import sun.misc.Signal;

/**
 * questlog's embedded HDFS: one NameNode + one DataNode (MiniDFSCluster) in this JVM.
 *
 * <pre>
 *   java -cp ... MiniHdfs --base-dir DIR [--rpc-port N] [--http-port N]
 * </pre>
 *
 * Port 0 means "any free port". The base dir is formatted on the first start only; later
 * starts reuse its NameNode metadata and DataNode blocks. Once the cluster is up, prints
 * exactly one line {@code QUESTLOG_HDFS_READY rpc=<port> http=<port>} to stdout, then runs
 * until stdin reaches EOF or the JVM gets SIGTERM, and shuts the cluster down cleanly.
 */
public final class MiniHdfs {
    private static final String READY = "QUESTLOG_HDFS_READY";

    private MiniHdfs() {}

    private static void usage(String problem) {
        System.err.println("MiniHdfs: " + problem);
        System.err.println("usage: MiniHdfs --base-dir DIR [--rpc-port N] [--http-port N]");
        System.exit(2);
    }

    /**
     * True if a NameNode dir of an earlier run already holds a formatted image. MiniDFSCluster
     * keeps them at base/name-0-1, base/name-0-2 (older releases: base/data/name1, ...).
     */
    static boolean alreadyFormatted(File baseDir) {
        for (File parent : new File[] {baseDir, new File(baseDir, "data")}) {
            File[] dirs = parent.listFiles();
            if (dirs == null) {
                continue;
            }
            for (File dir : dirs) {
                if (dir.getName().startsWith("name")
                        && new File(dir, "current/VERSION").isFile()) {
                    return true;
                }
            }
        }
        return false;
    }

    private static void quietLogs() {
        // No slf4j binding is on the classpath (Hadoop's slf4j logging is a no-op);
        // commons-logging falls back to java.util.logging: keep it at WARNING.
        Logger root = Logger.getLogger("");
        root.setLevel(Level.WARNING);
        for (java.util.logging.Handler h : root.getHandlers()) {
            h.setLevel(Level.WARNING);
        }
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable t) {
            // Hadoop leaves non-daemon threads behind: exit explicitly, never hang.
            System.err.println("MiniHdfs: failed to start");
            t.printStackTrace();
            System.exit(1);
        }
    }

    private static void run(String[] args) throws Exception {
        String baseDir = null;
        int rpcPort = 0;
        int httpPort = 0;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                usage("missing value for " + a);
            }
            String v = args[++i];
            try {
                switch (a) {
                    case "--base-dir": baseDir = v; break;
                    case "--rpc-port": rpcPort = Integer.parseInt(v); break;
                    case "--http-port": httpPort = Integer.parseInt(v); break;
                    default: usage("unknown argument " + a);
                }
            } catch (NumberFormatException e) {
                usage("not a port number: " + v);
            }
        }
        if (baseDir == null) {
            usage("--base-dir is required");
        }
        quietLogs();

        File base = new File(baseDir).getAbsoluteFile();
        if (!base.isDirectory() && !base.mkdirs()) {
            throw new IOException("cannot create base dir " + base);
        }
        boolean formatted = alreadyFormatted(base);
        System.err.println("MiniHdfs: " + (formatted ? "reusing the formatted cluster in "
                : "formatting a new cluster in ") + base);

        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.getPath());
        conf.setBoolean("dfs.webhdfs.enabled", true);
        conf.setBoolean("dfs.permissions.enabled", false);
        conf.setInt("dfs.replication", 1);
        // One DataNode: never try to replace it in a write pipeline.
        conf.setBoolean("dfs.client.block.write.replace-datanode-on-failure.enable", false);
        conf.set("dfs.client.block.write.replace-datanode-on-failure.policy", "NEVER");
        // Everything on loopback (the NameNode already defaults to 127.0.0.1).
        conf.set("dfs.namenode.rpc-bind-host", "127.0.0.1");
        conf.set("dfs.namenode.http-bind-host", "127.0.0.1");
        conf.set("dfs.datanode.hostname", "127.0.0.1");
        // Leave safe mode as soon as the single DataNode has reported.
        conf.setInt("dfs.namenode.safemode.extension", 0);

        final MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf, base)
                .numDataNodes(1)
                .nameNodePort(rpcPort)
                .nameNodeHttpPort(httpPort)
                .format(!formatted)
                .manageNameDfsDirs(true)
                .manageDataDfsDirs(true)
                .waitSafeMode(true)
                .build();

        // Shut down from a signal handler / the stdin watcher, i.e. outside the JVM's
        // shutdown phase: Hadoop's own hooks refuse to be removed while it runs, which makes
        // MiniDFSCluster.shutdown() from a plain shutdown hook fail half-way.
        Runnable stop = () -> shutdownAndExit(cluster);
        for (String sig : new String[] {"TERM", "INT", "HUP"}) {
            Signal.handle(new Signal(sig), s -> stop.run());
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (!stopped) {  // exit by another path (e.g. an uncaught error): best effort
                stopped = true;
                try {
                    stopKeepingData(cluster);
                } catch (Throwable t) {
                    System.err.println("MiniHdfs: shutdown in hook failed: " + t);
                }
            }
        }, "questlog-minihdfs-shutdown"));

        cluster.waitActive();
        cluster.waitClusterUp();
        long deadline = System.currentTimeMillis() + 60_000;
        while (cluster.getNameNode().isInSafeMode() && System.currentTimeMillis() < deadline) {
            Thread.sleep(100);
        }
        if (cluster.getNameNode().isInSafeMode()) {
            throw new IOException("NameNode is still in safe mode after 60s");
        }

        int rpc = cluster.getNameNodePort();
        int http = cluster.getNameNode().getHttpAddress().getPort();
        System.out.println(READY + " rpc=" + rpc + " http=" + http);
        System.out.flush();

        // Run until stdin closes (the parent went away) or a signal handler stops us.
        InputStream in = System.in;
        byte[] buf = new byte[256];
        try {
            while (in.read(buf) >= 0) {
                // ignore input
            }
        } catch (IOException e) {
            // stdin unusable: treat as EOF
        }
        stop.run();
    }

    /**
     * Stop the DataNode, then the NameNode (which closes its edit log cleanly). Not
     * MiniDFSCluster.shutdown(): that also calls FileUtil.fullyDeleteOnExit(base dir), so
     * the whole cluster state would vanish when this JVM exits.
     */
    private static void stopKeepingData(MiniDFSCluster cluster) {
        cluster.shutdownDataNodes();
        cluster.shutdownNameNodes();
    }

    /** Set once the cluster is shut down (or being shut down by shutdownAndExit). */
    private static volatile boolean stopped;

    private static final Object STOP_LOCK = new Object();

    private static void shutdownAndExit(MiniDFSCluster cluster) {
        int code = 0;
        synchronized (STOP_LOCK) {
            if (stopped) {
                return;
            }
            stopped = true;
            try {
                System.err.println("MiniHdfs: shutting down");
                stopKeepingData(cluster);
                System.err.println("MiniHdfs: stopped");
            } catch (Throwable t) {
                System.err.println("MiniHdfs: shutdown failed: " + t);
                code = 1;
            }
        }
        System.exit(code);  // outside the lock: exit runs the shutdown hooks and waits
    }
}
