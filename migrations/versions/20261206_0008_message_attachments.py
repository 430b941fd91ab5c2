"""attachments and components of messages

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-06

Two nullable text columns on the SQL message store's ``messages`` table: ``attachments_json`` (the message's
files, whose bytes live in the blob store, app.blobs) and ``components_json`` (Discord's message components).
Both hold JSON and are NULL for a message without any.

Compatibility: nullable columns without a default, which the previous release neither reads nor writes (it
selects its columns by name), so this revision can be applied while that release runs; on PostgreSQL adding
them changes only the catalog, without rewriting the table. Messages the previous release writes meanwhile
simply have no attachments. A downgrade drops the columns and with them every message's attachment records
(the files stay in the blob store).
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('attachments_json', sa.Text(), nullable=True))
        batch.add_column(sa.Column('components_json', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('components_json')
        batch.drop_column('attachments_json')
