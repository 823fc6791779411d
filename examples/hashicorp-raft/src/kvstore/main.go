// kvstore: a key-value store on hashicorp/raft that follows the consensus rules, served
// over the pytest-consensus HTTP protocol by the raftprotocol package.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"

	"raftprotocol"
)

type peers []string

func (p *peers) String() string     { return strings.Join(*p, ",") }
func (p *peers) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	name := flag.String("name", "", "this node's name (the harness's {name})")
	raftAddress := flag.String("raft", "", "ADDR:PORT for Raft traffic")
	apiAddress := flag.String("api", "", "ADDR:PORT for the HTTP protocol")
	dataDir := flag.String("data", "", "folder for the log, the stable store and snapshots")
	snapshotEntries := flag.Uint64("snapshot-entries", 1024, "take a snapshot every this many entries")
	restore := flag.String("restore", "replace", "replace (correct) or merge (the rules text's bug)")
	var members peers
	flag.Var(&members, "peer", "NAME=ADDR:PORT of another member (repeat)")
	flag.Parse()
	if *name == "" || *raftAddress == "" || *apiAddress == "" || *dataDir == "" {
		log.Fatal("-name, -raft, -api and -data are required")
	}

	config := raft.DefaultConfig()
	config.LocalID = raft.ServerID(*name)
	config.HeartbeatTimeout = 500 * time.Millisecond
	config.ElectionTimeout = 500 * time.Millisecond
	config.LeaderLeaseTimeout = 250 * time.Millisecond
	config.SnapshotThreshold = *snapshotEntries
	config.TrailingLogs = *snapshotEntries // no larger than the threshold: laggards get a snapshot
	config.SnapshotInterval = time.Second
	config.Logger = hclog.New(&hclog.LoggerOptions{Name: *name, Level: hclog.Info, Output: os.Stderr})

	store, err := raftboltdb.NewBoltStore(filepath.Join(*dataDir, "raft.db"))
	check(err)
	snapshots, err := raft.NewFileSnapshotStore(*dataDir, 2, os.Stderr)
	check(err)
	advertise, err := net.ResolveTCPAddr("tcp", *raftAddress)
	check(err)
	transport, err := raft.NewTCPTransport(*raftAddress, advertise, 3, 10*time.Second, os.Stderr)
	check(err)

	fsm := newFSM(*restore == "merge")
	node, err := raft.NewRaft(config, fsm, store, store, snapshots, transport)
	check(err)

	names := map[raft.ServerAddress]string{raft.ServerAddress(*raftAddress): *name}
	servers := []raft.Server{{ID: config.LocalID, Address: raft.ServerAddress(*raftAddress)}}
	for _, member := range members {
		parts := strings.SplitN(member, "=", 2)
		if len(parts) != 2 {
			log.Fatalf("-peer %q: want NAME=ADDR:PORT", member)
		}
		names[raft.ServerAddress(parts[1])] = parts[0]
		servers = append(servers, raft.Server{ID: raft.ServerID(parts[0]), Address: raft.ServerAddress(parts[1])})
	}
	existing, err := raft.HasExistingState(store, store, snapshots)
	check(err)
	if !existing { // every member bootstraps with the same configuration
		check(node.BootstrapCluster(raft.Configuration{Servers: servers}).Error())
	}

	server := &raftprotocol.Server{
		Raft:  node,
		Store: fsm,
		Name:  *name,
		Names: names,
		Capabilities: []string{
			"strong", "stale", "cas", "delete", "append", "leader", "digest", "request-ids",
			"scan",
		},
	}
	fmt.Fprintf(os.Stderr, "kvstore %s: raft %s, api %s, restore %s\n", *name, *raftAddress, *apiAddress, *restore)
	check(http.ListenAndServe(*apiAddress, server))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
