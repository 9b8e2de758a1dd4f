-- 104: kasir_outbox ids are reserved by the worker a block at a time (lib/outbox.c): one
-- nextval() per block of 1024 instead of one per row, so that a batch's rows can be
-- written with COPY (no RETURNING there) under ids known before the write. Blocks handed
-- to different transactions never overlap, and a reader of DEFAULT nextval() still gets
-- a fresh id (the first of a block).
ALTER SEQUENCE kasir_outbox_id_seq INCREMENT BY 1024;
