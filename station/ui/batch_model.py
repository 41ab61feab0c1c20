"""The batch review's results table: a model over light rows, and a filtering, sorting proxy.

The model holds one ``ItemRow`` per file (a few numbers each) and nothing else; thumbnails are
read from the on-disk cache as rows come into view and only the most recent few hundred are
kept, so 10,000 files cost a few megabytes.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSize, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QPixmap

from station.labels import display_name
from station.review.store import ItemRow, Review
from station.review.thumbnails import ThumbnailCache

COLUMNS = ("", "File", "Material", "Confidence", "Uncertain", "Defects", "Top defect", "Review")
THUMBNAIL_COLUMN, FILE_COLUMN, MATERIAL_COLUMN, CONFIDENCE_COLUMN, UNCERTAIN_COLUMN, DEFECTS_COLUMN, TOP_COLUMN, REVIEW_COLUMN = range(8)
# the longest text each column usually holds: the table sizes its columns by these
COLUMN_SAMPLES = {MATERIAL_COLUMN: "Metallic", CONFIDENCE_COLUMN: "100.0%", UNCERTAIN_COLUMN: "UNCERTAIN",
                  DEFECTS_COLUMN: "12", TOP_COLUMN: "0.99", REVIEW_COLUMN: "overridden → Metallic"}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_ROLE = Qt.ItemDataRole.UserRole + 2
THUMBNAIL_SIZE = QSize(72, 54)
_PIXMAP_CACHE_SIZE = 400
_ERROR_COLOR = QColor("#b3261e")
_UNCERTAIN_COLOR = QColor("#a15c00")
_DONE_COLOR = QColor("#1e6b34")
_ValidIndex = QModelIndex | QPersistentModelIndex
_DIGITS = re.compile(r"\d+")


def natural_text_key(path: str) -> str:
    """A string that sorts "img2" before "img10" (digit runs zero-padded), as the folder lists them."""
    return _DIGITS.sub(lambda match: match.group().zfill(12), path.lower())


class BatchTableModel(QAbstractTableModel):
    def __init__(self, thumbnails: ThumbnailCache | None = None, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[ItemRow] = []
        self._index_of: dict[int, int] = {}
        self._pending: set[int] = set()  # items with a decision being written
        self._thumbnails = thumbnails or ThumbnailCache()
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()

    # -- content --------------------------------------------------------------------------
    def set_rows(self, rows: list[ItemRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._index_of = {row.item_id: i for i, row in enumerate(self._rows)}
        self._pending.clear()
        self.endResetModel()

    def update_rows(self, rows: list[ItemRow]) -> None:
        """Replace rows by item id; items the model does not list are appended."""
        new = []
        for row in rows:
            index = self._index_of.get(row.item_id)
            if index is None:
                new.append(row)
                continue
            self._rows[index] = row
            self.dataChanged.emit(self.index(index, 0), self.index(index, len(COLUMNS) - 1))
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for offset, row in enumerate(new):
                self._index_of[row.item_id] = first + offset
                self._rows.append(row)
            self.endInsertRows()

    def set_pending(self, item_id: int, pending: bool) -> None:
        (self._pending.add if pending else self._pending.discard)(item_id)
        index = self._index_of.get(item_id)
        if index is not None:
            self.dataChanged.emit(self.index(index, REVIEW_COLUMN), self.index(index, REVIEW_COLUMN))

    def is_pending(self, item_id: int) -> bool:
        return item_id in self._pending

    def row_at(self, row: int) -> ItemRow:
        return self._rows[row]

    def row_for(self, item_id: int) -> ItemRow | None:
        index = self._index_of.get(item_id)
        return None if index is None else self._rows[index]

    def source_row_of(self, item_id: int) -> int | None:
        return self._index_of.get(item_id)

    def rows(self) -> list[ItemRow]:
        return list(self._rows)

    def iter_rows(self):
        return iter(self._rows)

    # -- Qt model -------------------------------------------------------------------------
    def rowCount(self, parent: _ValidIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _ValidIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: _ValidIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == SORT_ROLE:
            return self._sort_key(row, column)
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.DecorationRole and column == THUMBNAIL_COLUMN:
            return self._pixmap(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.error if row.is_error else row.relative_path
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.is_error:
                return _ERROR_COLOR
            if column == UNCERTAIN_COLUMN and row.uncertain:
                return _UNCERTAIN_COLOR
            if column == REVIEW_COLUMN and row.is_reviewed:
                return _DONE_COLOR
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (CONFIDENCE_COLUMN, DEFECTS_COLUMN, TOP_COLUMN):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.SizeHintRole and column == THUMBNAIL_COLUMN:
            return THUMBNAIL_SIZE
        return None

    def _text(self, row: ItemRow, column: int) -> str:
        if column == FILE_COLUMN:
            return row.relative_path
        if column == REVIEW_COLUMN:
            if row.item_id in self._pending:
                return "saving…"
            if row.review == Review.OVERRIDDEN.value:
                return f"overridden → {display_name(row.reviewed_material)}"
            return row.status_text
        if row.is_error:
            return (row.error or "error") if column == MATERIAL_COLUMN else ""
        if not row.is_done:
            return ""
        if column == MATERIAL_COLUMN:
            return display_name(row.material)
        if column == CONFIDENCE_COLUMN:
            return "—" if row.confidence is None else f"{row.confidence:.1%}"
        if column == UNCERTAIN_COLUMN:
            return "UNCERTAIN" if row.uncertain else ""
        if column == DEFECTS_COLUMN:
            return str(row.n_defects or 0)
        if column == TOP_COLUMN:
            return "" if row.top_defect_score is None else f"{row.top_defect_score:.2f}"
        return ""

    @staticmethod
    def _sort_key(row: ItemRow, column: int):
        if column in (FILE_COLUMN, THUMBNAIL_COLUMN):
            return natural_text_key(row.relative_path)
        if column == MATERIAL_COLUMN:
            return row.material or ("~" + (row.error or ""))
        if column == CONFIDENCE_COLUMN:
            return -1.0 if row.confidence is None else row.confidence
        if column == UNCERTAIN_COLUMN:
            return int(bool(row.uncertain))
        if column == DEFECTS_COLUMN:
            return -1 if row.n_defects is None else row.n_defects
        if column == TOP_COLUMN:
            return -1.0 if row.top_defect_score is None else row.top_defect_score
        return row.status_text

    def _pixmap(self, row: ItemRow) -> QPixmap | None:
        if row.sha256 is None or row.is_error:
            return None
        pixmap = self._pixmaps.get(row.sha256)
        if pixmap is not None:
            self._pixmaps.move_to_end(row.sha256)
            return pixmap
        path = self._thumbnails.path(row.sha256)
        if not path.is_file():
            return None  # not written yet: asked again when the row changes
        pixmap = QPixmap(str(path))
        if pixmap.isNull():
            return None
        pixmap = pixmap.scaled(THUMBNAIL_SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self._pixmaps[row.sha256] = pixmap
        if len(self._pixmaps) > _PIXMAP_CACHE_SIZE:
            self._pixmaps.popitem(last=False)
        return pixmap


class BatchFilterProxy(QSortFilterProxyModel):
    """Filters: uncertain only, has defects, not yet reviewed, file name contains; sorts by value."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.uncertain_only = False
        self.has_defects = False
        self.not_reviewed = False
        self.name_filter = ""
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def set_filters(self, *, uncertain_only: bool | None = None, has_defects: bool | None = None,
                    not_reviewed: bool | None = None, name_filter: str | None = None) -> None:
        # Qt 6.9 replaced invalidateFilter() by a begin/end pair around the change
        modern = hasattr(self, "beginFilterChange")
        if modern:
            self.beginFilterChange()
        if uncertain_only is not None:
            self.uncertain_only = uncertain_only
        if has_defects is not None:
            self.has_defects = has_defects
        if not_reviewed is not None:
            self.not_reviewed = not_reviewed
        if name_filter is not None:
            self.name_filter = name_filter.strip().lower()
        if modern:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: _ValidIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        assert isinstance(model, BatchTableModel)
        return self.accepts(model.row_at(source_row))

    def accepts(self, row: ItemRow) -> bool:
        if self.uncertain_only and not row.uncertain:
            return False
        if self.has_defects and not row.has_defects:
            return False
        if self.not_reviewed and (row.is_reviewed or not row.is_done):
            return False
        return not self.name_filter or self.name_filter in row.relative_path.lower()

    def visible_rows(self) -> list[ItemRow]:
        """The rows the filters let through, in the source model's (folder) order."""
        model = self.sourceModel()
        assert isinstance(model, BatchTableModel)
        return [row for row in model.iter_rows() if self.accepts(row)]
