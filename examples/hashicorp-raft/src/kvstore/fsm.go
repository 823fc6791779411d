package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/raft"

	"raftprotocol"
)

// rememberedRequests bounds the request ids kept for de-duplication (oldest forgotten).
const rememberedRequests = 100000

// kvFSM is the replicated state: the keys, and the request ids already applied with their
// results, so a retried write (same id, any leader, after any restart) is not applied again.
type kvFSM struct {
	mu           sync.Mutex
	data         map[string]string
	requests     map[string]raftprotocol.Result
	order        []string
	mergeRestore bool // the consensus rules text's Restore: merges instead of replacing
}

func newFSM(mergeRestore bool) *kvFSM {
	return &kvFSM{
		data:         map[string]string{},
		requests:     map[string]raftprotocol.Result{},
		mergeRestore: mergeRestore,
	}
}

func (f *kvFSM) Apply(entry *raft.Log) interface{} {
	var command raftprotocol.Command
	if err := json.Unmarshal(entry.Data, &command); err != nil {
		return fmt.Errorf("bad command: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if command.RequestID != nil {
		if result, seen := f.requests[*command.RequestID]; seen {
			return result // a retry: the first attempt's result, applied once
		}
	}
	var result raftprotocol.Result
	current, found := f.data[command.Key]
	switch command.F {
	case "put":
		f.data[command.Key] = command.Value
	case "append":
		f.data[command.Key] = current + command.Value
	case "delete":
		delete(f.data, command.Key)
		result.Deleted = found
	case "cas":
		matches := (command.Expected == nil && !found) ||
			(command.Expected != nil && found && *command.Expected == current)
		if matches {
			f.data[command.Key] = command.Value
			result.Swapped = true
		} else if found {
			seen := current
			result.Current = &seen
		}
	default:
		return fmt.Errorf("no operation %q", command.F)
	}
	if command.RequestID != nil {
		f.remember(*command.RequestID, result)
	}
	return result
}

func (f *kvFSM) remember(id string, result raftprotocol.Result) {
	f.requests[id] = result
	f.order = append(f.order, id)
	if len(f.order) > rememberedRequests {
		delete(f.requests, f.order[0])
		f.order = f.order[1:]
	}
}

type snapshotState struct {
	Data     map[string]string              `json:"data"`
	Requests map[string]raftprotocol.Result `json:"requests"`
	Order    []string                       `json:"order"`
}

type kvSnapshot struct{ payload []byte }

func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	payload, err := json.Marshal(snapshotState{f.data, f.requests, f.order})
	if err != nil {
		return nil, err
	}
	return &kvSnapshot{payload}, nil
}

func (s *kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.payload); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *kvSnapshot) Release() {}

// Restore replaces the whole state with the snapshot's: a follower that installs a
// snapshot must end up with exactly the leader's state, keys deleted meanwhile included.
func (f *kvFSM) Restore(reader io.ReadCloser) error {
	defer reader.Close()
	var state snapshotState
	if err := json.NewDecoder(reader).Decode(&state); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mergeRestore { // the rules text's version: keys the snapshot lacks survive
		for key, value := range state.Data {
			f.data[key] = value
		}
		return nil
	}
	if state.Data == nil {
		state.Data = map[string]string{}
	}
	if state.Requests == nil {
		state.Requests = map[string]raftprotocol.Result{}
	}
	f.data, f.requests, f.order = state.Data, state.Requests, state.Order
	return nil
}

func (f *kvFSM) Get(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	value, found := f.data[key]
	return value, found
}

func (f *kvFSM) Scan(prefix string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	items := map[string]string{}
	for key, value := range f.data {
		if strings.HasPrefix(key, prefix) {
			items[key] = value
		}
	}
	return items
}

// Digest hashes the keys and values in key order: equal exactly on equal states.
func (f *kvFSM) Digest() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]string, 0, len(f.data))
	for key := range f.data {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	hash := sha256.New()
	for _, key := range keys {
		fmt.Fprintf(hash, "%d:%s%d:%s", len(key), key, len(f.data[key]), f.data[key])
	}
	return hex.EncodeToString(hash.Sum(nil))[:16]
}
