// Package failpoint names the points of the engine where a test may crash
// the process (TESTPLAN S1): every step of commit, WAL rotation, flush,
// manifest update, compaction, file deletion and recovery.
//
// Failpoints are compiled in only under the build tag strata_failpoints.
// In a release build Hit is an empty function the compiler inlines away,
// and Enabled is false. Under the tag, the environment variable
// STRATA_FAILPOINT="name@n" arms one failpoint: its n-th hit (1 for the
// first) kills the process with SIGKILL, as kill -9 would, leaving the
// files as they are.
package failpoint

// EnvVar is the environment variable that arms a failpoint under the
// strata_failpoints build tag.
const EnvVar = "STRATA_FAILPOINT"

// The failpoints, by the step they interrupt.
const (
	WALBeforeWrite                 = "wal.beforeWrite"
	WALMidRecord                   = "wal.midRecord"
	WALBeforeSync                  = "wal.afterWriteBeforeSync"
	WALAfterSyncBeforeApply        = "wal.afterSyncBeforeApply"
	MemtableAfterApplyBeforeAck    = "memtable.afterApplyBeforeAck"
	WALRotateAfterCreateBeforeSync = "wal.rotate.afterCreateBeforeDirSync"
	SSTAfterWriteBeforeSync        = "sstable.afterWriteBeforeSync"
	FlushAfterSSTSyncBeforeMani    = "flush.afterSSTSyncBeforeManifest"
	FlushAfterManifestBeforeDelete = "flush.afterManifestBeforeWALDelete"
	ManifestBeforeAppend           = "manifest.beforeAppend"
	ManifestAfterAppendBeforeSync  = "manifest.afterAppendBeforeSync"
	ManifestRollBeforeCreate       = "manifest.rollover.beforeCreate"
	ManifestRollAfterCreate        = "manifest.rollover.afterCreateBeforeDelete"
	CompactionAfterOutputsBeforeM  = "compaction.afterOutputsBeforeManifest"
	CompactionAfterManifestBeforeD = "compaction.afterManifestBeforeDelete"
	GCMidDelete                    = "gc.midDelete"
	RecoveryAfterReplayBeforeMani  = "recovery.afterReplayBeforeManifest"
	RecoveryAfterManifestBeforeWAL = "recovery.afterManifestBeforeNewWAL"
	RecoveryAfterNewWALBeforeGC    = "recovery.afterNewWALBeforeRemovals"
	CloseMidFlush                  = "close.midFlush"
)

// Names lists every failpoint.
var Names = []string{
	WALBeforeWrite, WALMidRecord, WALBeforeSync, WALAfterSyncBeforeApply, MemtableAfterApplyBeforeAck,
	WALRotateAfterCreateBeforeSync, SSTAfterWriteBeforeSync, FlushAfterSSTSyncBeforeMani,
	FlushAfterManifestBeforeDelete, ManifestBeforeAppend, ManifestAfterAppendBeforeSync,
	ManifestRollBeforeCreate, ManifestRollAfterCreate,
	CompactionAfterOutputsBeforeM, CompactionAfterManifestBeforeD, GCMidDelete,
	RecoveryAfterReplayBeforeMani, RecoveryAfterManifestBeforeWAL, RecoveryAfterNewWALBeforeGC, CloseMidFlush,
}
